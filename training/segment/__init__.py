"""The lesion segmenter's training (``train DATA --task segment``): its data (images + masks), model,
training, ISIC 2018 Task 1 metrics and report, beside the classifier's in ``training/``."""
