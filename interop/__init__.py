"""Exchange with the FINN / Brevitas ecosystem: QONNX import and export (docs/DESIGN.md, "Importing QONNX")."""
