"""Super-resolution: interpolation baselines, PSNR / SSIM, and SRCNN and ESPCN.

Super-resolution (SR) is not itself a compression method. The course meets it twice: an
efficient SR network computes in low resolution and upsamples once at the end (ESPCN), so
each layer costs about r^2 less than in a network that upsamples first (SRCNN); and SR lets a
sender transmit a low-resolution image and the receiver restore detail.

References
----------
[1] R. Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP 1981.
[2] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE TIP 2004.
[3] C. Dong, C. C. Loy, K. He, X. Tang, "Image Super-Resolution Using Deep Convolutional
    Networks" (SRCNN), ECCV 2014 / TPAMI 2016, arXiv:1501.00092.
[4] W. Shi, J. Caballero, F. Huszar, J. Totz, A. P. Aitken, R. Bishop, D. Rueckert, Z. Wang,
    "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
    Convolutional Neural Network" (ESPCN), CVPR 2016, arXiv:1609.05158.

Read in this order:

* :mod:`compresskit.superres.resample`: nearest, bilinear and bicubic upsampling written out
  as interpolation matrices, and the box downscaling that makes training pairs.
* :mod:`compresskit.superres.metrics`: PSNR and SSIM, with the border crop of the SR literature.
* :mod:`compresskit.superres.networks`: SRCNN and ESPCN, and patch sampling for training.
* :mod:`compresskit.superres.residual`: a global bicubic skip, so a network learns only the residual.
"""

from compresskit.superres.metrics import psnr, rgb_to_y, ssim
from compresskit.superres.networks import espcn, sample_patches, srcnn
from compresskit.superres.residual import BicubicResidual, bicubic_residual
from compresskit.superres.resample import (
    cubic_kernel,
    downscale,
    interpolation_matrix,
    source_coordinates,
    upsample,
    upsample_bicubic,
    upsample_bilinear,
    upsample_nearest,
)

__all__ = [
    "BicubicResidual",
    "bicubic_residual",
    "cubic_kernel",
    "downscale",
    "espcn",
    "interpolation_matrix",
    "psnr",
    "rgb_to_y",
    "sample_patches",
    "source_coordinates",
    "srcnn",
    "ssim",
    "upsample",
    "upsample_bicubic",
    "upsample_bilinear",
    "upsample_nearest",
]
