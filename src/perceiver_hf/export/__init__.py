"""Every model as a graph: `torch.export` programs and ONNX folders with symbolic batch and input sizes.

`export_program(model)` returns a `torch.export.ExportedProgram` of any perceiver_hf model; `export_folder`
(the `perceiver-hf export` command) writes an ONNX folder. ONNX needs the `export` extra
(`pip install 'perceiver-hf[export]'`: onnx, onnxscript, onnxruntime).
"""

from .onnx_folder import export_folder, export_onnx, load_for_export, onnxruntime_error, save_onnx
from .signature import ExportableModel, ExportInput, export_program, whole_arrays

__all__ = [
    "ExportInput",
    "ExportableModel",
    "export_folder",
    "export_onnx",
    "export_program",
    "load_for_export",
    "onnxruntime_error",
    "save_onnx",
    "whole_arrays",
]
