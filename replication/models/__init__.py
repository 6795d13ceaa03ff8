"""timm-registered model families of the paper. Importing this package registers them with timm."""
