#!/bin/bash
# A second batch of real wallpapers from Debian packages, beside ../shared/fetch_photos.sh:
# Lomiri (Ubuntu) photographs, UKUI, MATE (photos, abstract renders, stripes), Sway and Debian's
# own theme art. Doubles the 55-photo corpus; the first corpus had 39 training photos, too few
# for the texture and flat-graphics priors the model lacked at sigma 15.
# Skipped: logos, plymouth glow, previews, and all but one resolution of a multi-size wallpaper.
# usage: tools/fetch_more_photos.sh OUT
set -euo pipefail
out=${1:?usage: fetch_more_photos.sh OUT}
mkdir -p "$out"; out=$(cd "$out" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
packages=(lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 ukui-wallpapers
          mate-backgrounds sway-backgrounds desktop-base)
apt-get download "${packages[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null 2>&1; apt-get download "${packages[@]}" >/dev/null; }
for deb in *.deb; do dpkg -x "$deb" x; done
n=0
while IFS= read -r -d '' f; do
  case "$f" in
    *preview*|*glow*|*logo+*|*_1136x640*|*_1366x768*|*_1920x1080*|*_768x1024*|*Portrait*) continue;;
    *Elephants.jpg|*Elephants_5640x3172*) continue;;
  esac
  name=$(echo "${f#x/usr/share/}" | tr '/' '_')
  cp "$f" "$out/$name"; n=$((n+1))
done < <(find x/usr/share \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -size +200k -print0)
echo "$n photos in $out"
