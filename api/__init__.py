"""HTTP edge: litestar app, controllers per audience, auth guards, one problem+json mapping."""
