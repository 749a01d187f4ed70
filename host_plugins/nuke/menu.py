# RVMMatte in the GUI: a toolbar menu and the Tab menu (commands under the Nodes toolbar are
# what Tab searches). Nuke runs menu.py after init.py, only in the GUI.
import nuke
import rvm_matte.menu

rvm_matte.menu.add_menus(nuke.menu("Nodes"))
