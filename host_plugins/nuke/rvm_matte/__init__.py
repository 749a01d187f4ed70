"""RVMMatte: Robust Video Matting in Nuke, through an rvm-bridge server.

A Group made in Python (``node.create``): one input, the plate; output RGBA, the model's
foreground and alpha, premultiplied, in the script's working space. The model never runs from
the viewer: a button (``render.render_button``) or, on a render node, a before-render callback
(``callbacks.before_render``) renders the node's frame range through the bridge in frame order,
and internal Reads show the plates it wrote. Python 3.7+ (Nuke 13 on); see docs/nuke.md.
"""

MARKER = "rvm_matte"  # the node's first tab: how callbacks know an RVMMatte among Groups
