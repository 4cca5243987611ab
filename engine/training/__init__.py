"""Learning from shoppers' feedback: click models, training sets and fine-tuning.

click_model and dataset are numpy-only (the web may import them); finetune needs torch.
"""
