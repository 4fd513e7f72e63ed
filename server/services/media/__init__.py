"""Audio and images: recognising formats, reading tags, storing files, transcoding and
streaming them."""
