#!/bin/sh
# Entry point of the s1tiling image, as S1Tiling's: the first argument may pick the program
# (--lia: S1LIAMap, --ia: S1IAMap, --gamma_area: S1GammaAreaMap); anything else goes to S1Processor.
case "$1" in
    --lia) shift; exec S1LIAMap "$@" ;;
    --ia) shift; exec S1IAMap "$@" ;;
    --gamma_area|--gamma-area) shift; exec S1GammaAreaMap "$@" ;;
    *) exec S1Processor "$@" ;;
esac
