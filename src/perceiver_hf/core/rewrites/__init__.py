"""Algebraic rewrites of the attention layers: the same functions as the plain path (`perceiver_hf.core.attention`),
computed with less work for particular shapes, and the planner that picks one from the shapes and the cost rules.

* `folded_key_values`: few queries against a long input array (the encoder's latents against 50,176 pixels):
  the key/value projections fold into the queries.
* `absorbed_query_output`: many queries against a short input (a decoder's pixels against the latents): the
  query and output projections are absorbed into the keys and values.
* `folded_decoder`: hundreds of thousands of factored position queries (video reconstruction, inference only):
  the whole decoder layer and the output maps fold into per-coordinate tables.
* `residual_product`: a residual added inside the last product of a layer's attention step and of its MLP instead
  of in a pass of its own.

Each reads the layer's weights through `PerceiverIOLayer.maps()`; `planner` decides which runs.
"""
