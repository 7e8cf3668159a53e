"""mediasvc speech-to-text engine on whisper.cpp (pywhispercpp), with ggml models converted from registry packages."""
