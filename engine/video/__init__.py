"""Video cue Foley: decoding, visual onsets, cue planning and the paper's video-to-audio-token model."""
