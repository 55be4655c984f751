"""sRGB <-> DICOM CIELab (Recommended Display CIELab Value, PS3.3 C.10.7.1.1).

DICOM stores CIELab (D65 white point) as three unsigned 16-bit integers: L* scaled
from 0..100, a* and b* shifted and scaled from -128..127.  Written here rather than
taken from highdicom because the highdicom versions that run inside older Slicer
releases do not have it.
"""

from __future__ import annotations

import numpy as np

_D65 = np.array([0.950456, 1.0, 1.088754])
_SRGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_DELTA = 6.0 / 29.0


def _f(t):
    return np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + 4.0 / 29.0)


def _f_inverse(t):
    return np.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4.0 / 29.0))


def dicom_lab_from_rgb(rgb) -> tuple[int, int, int]:
    """DICOM CIELab integers for an sRGB colour with components in 0..1."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _SRGB_TO_XYZ @ linear / _D65
    fx, fy, fz = _f(xyz)
    lab = np.array([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)])
    lab[0] = np.clip(lab[0], 0.0, 100.0)
    lab[1:] = np.clip(lab[1:], -128.0, 127.0)
    scaled = [lab[0] * 65535.0 / 100.0, (lab[1] + 128.0) * 65535.0 / 255.0,
              (lab[2] + 128.0) * 65535.0 / 255.0]
    return tuple(int(round(v)) for v in scaled)


def rgb_from_dicom_lab(value) -> tuple[float, float, float]:
    """sRGB components in 0..1 for DICOM CIELab integers."""
    value = np.asarray(value, dtype=np.float64)
    l_star = value[0] * 100.0 / 65535.0
    a_star = value[1] * 255.0 / 65535.0 - 128.0
    b_star = value[2] * 255.0 / 65535.0 - 128.0
    fy = (l_star + 16.0) / 116.0
    xyz = _f_inverse(np.array([fy + a_star / 500.0, fy, fy - b_star / 200.0])) * _D65
    linear = np.linalg.solve(_SRGB_TO_XYZ, xyz)
    linear = np.clip(linear, 0.0, 1.0)
    rgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return tuple(float(v) for v in np.clip(rgb, 0.0, 1.0))
