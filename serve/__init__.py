"""Voice server: native and Twilio websocket endpoints, A/B between the pipeline and speech-LLM arms,
call store, outcome detection, A/B report, simulated callers and a web page (see docs/serve.md)."""
