"""The engine: place calls and collect their outcomes, in calls mode or batches mode.

- ``frame`` — the loop both modes share: ``EngineDeps`` (everything a run works with),
  ``EngineSettings``, ``EngineResult``, stop conditions, idle waits, what falls due next;
- ``api`` — the API as the engine sees it: Protocols over the client's typed models;
- ``gate`` — the send gate every path that can ring a phone asks;
- ``outcomes`` — what an ended call means for the checkpoint (retry rule, opt-outs, sessions);
- ``attempts`` — an attempt's idempotency key and exact request body;
- ``calls`` — calls mode: ``loop`` (the sender), ``submit`` (one POST), ``collect`` (polling);
- ``batches`` — batches mode: ``loop``, ``plan`` (pacing, files), ``reconcile`` (uploads and
  lookups), ``collect`` and ``results`` (reading rows back);
- ``preflight`` — what a run will cost and how long it will take, before it starts.
"""
