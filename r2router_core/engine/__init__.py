"""The engine: prompt embedding in, a typed routing decision out (predict -> score -> decide).

``config`` (every default), ``training_data``, ``predictors/`` (kNN, ridge, logistic, blend),
``index`` (exact and ANN neighbour search), ``scoring`` (costs, constraints, utilities, argmax),
``options`` (per-call constraints), ``decision``, ``router`` and ``checkpoint``; ``batch`` routes
a whole file. The engine never imports evaluation, the store, execution or any integration.
"""
