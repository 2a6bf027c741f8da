"""The browser client served by the voice server (index.html, app.js, worklet.js)."""
