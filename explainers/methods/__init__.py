"""The attribution methods' maths, one module per method or family; `explainers.registry` is their one table.

`cams` holds the CAM base class and the one compiled pass every gradient CAM shares (with the classic CAMs);
`segxrescam` is a CAM of its own; `scorecam`, `xrai`, `methods_input` (the Integrated-Gradients family and
SmoothGrad) and `rise` each have a `run` function. A method added from outside the package is one module plus
one `registry.register` call (`tests/toy_method.py`). Nothing is imported here, so importing one method
module loads only what it needs.
"""
