"""Map between the dimensionless chain model and physical units.

The core (``chain``, ``scph``, ``localized``, ``md``) works with ħ = k_B = 1 and a mass
unit m0 and a spring unit k0 (normally the left chain's atom mass and spring). That fixes

* frequency  ω0 = sqrt(k0/m0)                  [rad/s]
* energy     E0 = ħ ω0                         [J]
* length     ℓ0 = sqrt(ħ / (m0 ω0))            [m]   (zero-point length, so E0 = k0 ℓ0²)
* temperature T0 = ħ ω0 / k_B                  [K]
* conductance G0 = k_B ω0                      [W/K] (G = J/ΔT with J in E0·ω0, ΔT in T0)

and the dimensionless quartic coefficient of ¼ λ y⁴ is λ ℓ0² / k0 (energy E0 = k0 ℓ0²).
Physical inputs: masses in amu, springs in eV/Å², quartic coefficients in eV/Å⁴,
temperatures in K; outputs: frequencies in THz (cycles, ω/2π) or rad/s, conductance in
W/K or pW/K.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# CODATA 2018 exact / recommended values (SI)
HBAR = 1.054571817e-34  # J s
KB = 1.380649e-23  # J/K
AMU = 1.66053906660e-27  # kg
EV = 1.602176634e-19  # J
ANGSTROM = 1e-10  # m


@dataclass(frozen=True)
class UnitSystem:
    """Dimensionless units anchored at a mass (amu) and a spring (eV/Å²)."""

    mass_amu: float
    spring_eV_per_A2: float

    @property
    def m0_kg(self) -> float:
        return self.mass_amu * AMU

    @property
    def k0_N_per_m(self) -> float:
        return self.spring_eV_per_A2 * EV / ANGSTROM**2

    @property
    def omega0_rad_per_s(self) -> float:
        return math.sqrt(self.k0_N_per_m / self.m0_kg)

    @property
    def length0_m(self) -> float:
        return math.sqrt(HBAR / (self.m0_kg * self.omega0_rad_per_s))

    @property
    def temperature0_K(self) -> float:
        return HBAR * self.omega0_rad_per_s / KB

    @property
    def conductance0_W_per_K(self) -> float:
        return KB * self.omega0_rad_per_s

    # physical -> dimensionless
    def mass(self, amu: float) -> float:
        return amu / self.mass_amu

    def spring(self, eV_per_A2: float) -> float:
        return eV_per_A2 / self.spring_eV_per_A2

    def quartic(self, eV_per_A4: float) -> float:
        """¼ λ y⁴ with λ in eV/Å⁴ -> dimensionless λ ℓ0²/k0."""
        lam_SI = eV_per_A4 * EV / ANGSTROM**4  # J/m⁴
        return lam_SI * self.length0_m**2 / self.k0_N_per_m

    def temperature(self, kelvin):
        return np.asarray(kelvin, dtype=float) / self.temperature0_K

    # dimensionless -> physical
    def spring_to_eV_per_A2(self, k):
        return np.asarray(k, dtype=float) * self.spring_eV_per_A2

    def omega_to_THz(self, omega):
        """Dimensionless angular frequency -> ordinary frequency ω/2π in THz."""
        return np.asarray(omega, dtype=float) * self.omega0_rad_per_s / (2 * math.pi) / 1e12

    def omega_to_rad_per_s(self, omega):
        return np.asarray(omega, dtype=float) * self.omega0_rad_per_s

    def conductance_to_pW_per_K(self, g):
        return np.asarray(g, dtype=float) * self.conductance0_W_per_K * 1e12

    def describe(self) -> dict:
        """Unit values for the run metadata (SI and the usual derived units)."""
        return {"mass_amu": self.mass_amu, "spring_eV_per_A2": self.spring_eV_per_A2,
                "omega0_rad_per_s": self.omega0_rad_per_s,
                "freq0_THz": self.omega0_rad_per_s / (2 * math.pi) / 1e12,
                "length0_A": self.length0_m / ANGSTROM, "temperature0_K": self.temperature0_K,
                "conductance0_pW_per_K": self.conductance0_W_per_K * 1e12}


@dataclass(frozen=True)
class PhysicalInterface:
    """Two chains joined by V_I = ½ k_I y² + ¼ λ y⁴, in physical units (amu, eV/Å², eV/Å⁴)."""

    mass_left_amu: float
    spring_left_eV_per_A2: float
    mass_right_amu: float
    spring_right_eV_per_A2: float
    k_int_eV_per_A2: float
    lam_eV_per_A4: float

    def units(self) -> UnitSystem:
        return UnitSystem(self.mass_left_amu, self.spring_left_eV_per_A2)

    def dimensionless(self) -> dict:
        """Keyword arguments of :func:`chain.interface_device` (plus ``lam``) in model units."""
        u = self.units()
        return {"m_left": u.mass(self.mass_left_amu), "k_left": u.spring(self.spring_left_eV_per_A2),
                "m_right": u.mass(self.mass_right_amu), "k_right": u.spring(self.spring_right_eV_per_A2),
                "k_int": u.spring(self.k_int_eV_per_A2), "lam": u.quartic(self.lam_eV_per_A4)}
