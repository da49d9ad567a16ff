"""`python -m tfdenoise.predict DIR`: the folder job (folder.py); `__main__` calls the CLI."""
