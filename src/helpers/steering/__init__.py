"""Value steering: activation capture and intervention through forward hooks (``hooks``).

The sparse-autoencoder training, feature selection and steering experiments of notebook 06 build
on these hooks.
"""
