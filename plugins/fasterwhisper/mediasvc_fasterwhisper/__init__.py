"""mediasvc speech-to-text engine on faster-whisper (CTranslate2), loading Whisper weights from registry packages."""
