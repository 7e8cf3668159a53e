"""mediasvc transcribe step: transcripts, WebVTT/SRT captions, HLS subtitles, session stitching and the transcription API."""
