"""The base layer every package may import: packaged model files, run records and their store, CLI helpers,
and the thread-to-asyncio bridge.

Nothing here knows about self-play, audio or serving; ``synth``, ``mads_audio``, ``train`` and ``serve`` build
on it (and on the rest of ``mads_text``), never the other way round.
"""
