"""mediasvc speech-to-text engine on whisper.cpp (pywhispercpp): official ggml models (pinned downloads) or
models converted from registry packages."""
