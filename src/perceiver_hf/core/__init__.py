"""The Perceiver IO core: the plain attention path and its layer (`attention`), the algebraic rewrites and their
planner (`rewrites`), the latent encoder, the query decoder, and the model base with `PerceiverIOModel`."""
