"""A small data set in FaceForensics++'s on-disk layout, so the whole pipeline runs in minutes without FF++.

FF++ is only given out after a request form, so this package synthesises originals (from skimage's astronaut
portrait, which needs no download, or from the user's own face videos or photos) and stand-ins for FF++'s four
manipulations, and stores them as FF++ did: a lossless render, then libx264 at -crf 23 (c23) and -crf 40 (c40),
binary mask videos, and split files of [id1, id2] pairs. make_demo_data.py is its script; synthetic.py is a
much cheaper face/ tree for tests and benchmarks. It lives outside forensics/ because the library never needs
it: demokit imports forensics, never the other way round.
"""
