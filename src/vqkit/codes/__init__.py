"""Code files: a trained model's discrete codes for a set of images or audio files, on disk.

:mod:`~vqkit.codes.format` is the file format (:func:`save_codes`, :func:`load_codes`,
:class:`CodeFile`), :mod:`~vqkit.codes.fingerprint` the model's identity stored in it, and
:mod:`~vqkit.codes.files` what ``vqkit encode`` and ``vqkit decode`` run
(:func:`encode_files`, :func:`decode_file`).
"""

from vqkit.codes.files import AUDIO_SUFFIXES, IMAGE_SUFFIXES, decode_file, encode_files
from vqkit.codes.fingerprint import check_fingerprint, model_fingerprint
from vqkit.codes.format import FORMAT_VERSION, CodeFile, code_dtype, load_codes, save_codes

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMAT_VERSION",
    "IMAGE_SUFFIXES",
    "CodeFile",
    "check_fingerprint",
    "code_dtype",
    "decode_file",
    "encode_files",
    "load_codes",
    "model_fingerprint",
    "save_codes",
]
