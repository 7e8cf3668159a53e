"""mediasvc face detection with OpenCV's Haar cascades."""
