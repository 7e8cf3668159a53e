"""mediasvc image analysis: the analyze step, analyze-image API, perceptual hashes and near-duplicate search."""
