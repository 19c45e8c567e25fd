; y = clamp8(relu(3*x - 5) >> 1) on every row: a tiny quantised layer.
; Run:  bfimna exec docs/examples/relu_affine.s --init docs/examples/relu_affine_init.npz
.field x 0 8 s        ; input, int8
.field y 8 16 s       ; accumulator, int16
.field z 24 8 s       ; output, int8

ROWS lo=0 hi=256       ; every row of the default 256-row AP
CLEAR d=y n=16
MAC.s d=y a=x imm=3 n=8 m=16   ; y += 3 * x   (CSD: 3 = 4 - 1, two passes)
SUBI d=y imm=5 n=16            ; y -= 5
RELU d=y n=16                  ; y = max(y, 0)
SHR.s d=y n=16 m=1             ; round(y / 2): the result is the 15-bit field at y+1
CLAMP.s d=9 n=15 m=8           ; saturate it to int8 (sign-extended in its 15 bits)
COPY d=z a=9 n=8               ; z = the low 8 bits
