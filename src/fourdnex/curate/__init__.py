"""Data curation: raw videos to training clips (the 4DNeX-10M pipeline), and importers."""
