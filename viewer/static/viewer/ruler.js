/* The ruler: two clicks measure a distance in µm (level-0 px times the slide's mpp). */

export function rulerClick() {}

export function drawRuler() {}
