#!/bin/sh
# Remove what install.sh installed (images, models, preferences and the gallery are the user's and stay).
set -eu
PREFIX=${PREFIX:-"$HOME/.local"}
ID=org.latentstudio.LatentStudio
rm -rf "$PREFIX/share/latent-studio"
rm -f "$PREFIX/share/applications/$ID.desktop" "$PREFIX/share/metainfo/$ID.metainfo.xml"
rm -f "$PREFIX"/share/icons/hicolor/*/apps/$ID.png "$PREFIX/share/icons/hicolor/scalable/apps/$ID.svg"
if [ -L "$PREFIX/bin/latent-studio" ]; then rm -f "$PREFIX/bin/latent-studio"; fi
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$PREFIX/share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" || true
echo "Latent Studio is removed. Your images, models and settings are kept."
