#!/bin/sh
# Install Latent Studio for this user: the program under ~/.local/share/latent-studio, the command
# ~/.local/bin/latent-studio, and the menu entry, icons and AppStream data under ~/.local/share, so that
# it shows in the applications menu and "Open with" offers it for PNG, JPEG and WebP images.
# Run it from the unpacked tarball: ./install.sh   (PREFIX=/some/where ./install.sh to install elsewhere)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-"$HOME/.local"}
ID=org.latentstudio.LatentStudio
APP="$PREFIX/share/latent-studio"

if [ ! -x "$HERE/latent-studio/latent-studio" ]; then
    echo "install.sh: run me from the unpacked tarball (latent-studio/latent-studio is missing)" >&2
    exit 1
fi
mkdir -p "$PREFIX/bin" "$PREFIX/share/applications" "$PREFIX/share/metainfo"
rm -rf "$APP.new"
cp -R "$HERE/latent-studio" "$APP.new"
rm -rf "$APP"
mv "$APP.new" "$APP"
ln -sf "$APP/latent-studio" "$PREFIX/bin/latent-studio"
# The menu entry runs the installed program by its full path: ~/.local/bin is not on every PATH.
sed "s|^Exec=latent-studio|Exec=$APP/latent-studio|; s|^TryExec=latent-studio|TryExec=$APP/latent-studio|" \
    "$HERE/share/applications/$ID.desktop" > "$PREFIX/share/applications/$ID.desktop"
cp "$HERE/share/metainfo/$ID.metainfo.xml" "$PREFIX/share/metainfo/"
for icon in "$HERE"/share/icons/hicolor/*/apps/$ID.png "$HERE"/share/icons/hicolor/scalable/apps/$ID.svg; do
    size=$(basename "$(dirname "$(dirname "$icon")")")
    mkdir -p "$PREFIX/share/icons/hicolor/$size/apps"
    cp "$icon" "$PREFIX/share/icons/hicolor/$size/apps/"
done
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$PREFIX/share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" || true
echo "Latent Studio is installed: the applications menu has it, and $PREFIX/bin/latent-studio runs it."
echo "To remove it: $APP/uninstall.sh"
