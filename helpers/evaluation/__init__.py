"""A trained model judged: metrics, decisions, subgroups, Grad-CAM, the leak between splits, evaluation on splits."""
