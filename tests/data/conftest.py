"""Small configs shared by the data tests (a few dozen images: the whole folder runs in seconds)."""
import pytest

SHAPES_TINY = {
    "seed": 3, "image_size": 64, "classes": ["disc", "square", "triangle", "ring", "crescent", "star", "ell", "bar"],
    "n_train": 40, "n_val": 12, "min_objects": 1, "max_objects": 4, "min_size": 5, "max_size": 32,
    "aspect_min": 0.6, "p_overlap": 0.5, "min_visible": 0.4, "min_area": 4, "texture_prob": 0.5,
    "min_contrast": 80, "noise_max": 10, "clutter_max": 3,
}
CLASSES_TINY = {
    "seed": 0, "class_seed": 0, "image_size": 32,
    "kinds": ["disc", "square", "triangle", "ring", "crescent", "star", "ell", "bar", "cross"],
    "textures": ["solid", "stripes", "checker", "dots"],
    "layouts": ["red_on_dark", "green_on_light", "blue_on_light", "yellow_on_dark"],
    "n_upstream": 100, "n_downstream": 40, "n_train_per_class": 2, "n_upstream_train_per_class": 3,
    "n_test_per_class": 1,
    "scale_min": 0.5, "scale_max": 0.95, "aspect_min": 0.8, "hue_jitter": 0.04, "noise_max": 12,
}
DIGITS = {"seed": 0, "test_fraction": 0.2, "upsample": 2, "channels": 3}


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    from paperzoo.data.generate import generate

    out = tmp_path_factory.mktemp("shapes")
    generate("shapes", SHAPES_TINY, out)
    return out
