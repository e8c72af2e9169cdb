"""The training loop and what it uses: augmentation on batches, inference (also used to validate), the linear probe."""
