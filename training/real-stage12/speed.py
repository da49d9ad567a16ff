"""The speed table of command.txt: model alone, bfloat16, 512^2, 4 interleaved rounds
(the functional models have the same convolutions as tfdenoise.models.UNet)."""
import time, sys, numpy as np, tensorflow as tf, keras
keras.mixed_precision.set_global_policy("mixed_bfloat16")
L = keras.layers
def conv(w, act="relu"): return L.Conv2D(w, 3, padding="same", activation=act)
def res(x, w):
    return L.Add()([x, conv(w, None)(conv(w)(x))])

def current():
    x = inp = keras.Input((None, None, 3))
    skips = []
    widths, blocks = (32, 64, 128, 256), (0, 0, 1, 2)
    h = x
    for i, w in enumerate(widths):
        h = conv(w)(conv(w)(h))
        for _ in range(blocks[i]): h = res(h, w)
        if i < 3: skips.append(h); h = L.MaxPooling2D(2)(h)
    for i in reversed(range(3)):
        h = L.Conv2DTranspose(widths[i], 2, strides=2, padding="same")(h)
        h = L.Concatenate()([h, skips[i]]); h = conv(widths[i])(conv(widths[i])(h))
    return keras.Model(inp, L.Conv2D(3, 1, dtype="float32")(h))

def unshuffle(stem=32, widths=(64, 128, 256), blocks=(0, 1, 2), stem_convs=2):
    x = inp = keras.Input((None, None, 3))
    h = L.Lambda(lambda t: tf.nn.space_to_depth(t, 2))(x)
    for _ in range(stem_convs): h = conv(stem)(h)
    skips = [h]; h = L.MaxPooling2D(2)(h)
    for i, w in enumerate(widths):
        h = conv(w)(conv(w)(h))
        for _ in range(blocks[i]): h = res(h, w)
        if i < len(widths) - 1: skips.append(h); h = L.MaxPooling2D(2)(h)
    ws = (stem,) + widths[:-1]
    for i in reversed(range(len(ws))):
        h = L.Conv2DTranspose(ws[i], 2, strides=2, padding="same")(h)
        h = L.Concatenate()([h, skips[i]]); h = conv(ws[i])(conv(ws[i])(h))
    h = L.Conv2D(12, 1, dtype="float32")(h)
    return keras.Model(inp, L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(h))

def D(widths=(64,128,256), blocks=(0,1,2)):
    """The unshuffled U-Net of real-stage12: real-stage9's levels 1.. on 2x2-unshuffled input."""
    x = inp = keras.Input((None, None, 3))
    h = L.Lambda(lambda t: tf.nn.space_to_depth(t, 2))(x)
    skips = []
    for i, w in enumerate(widths):
        h = conv(w)(conv(w)(h))
        for _ in range(blocks[i]): h = res(h, w)
        if i < len(widths) - 1: skips.append(h); h = L.MaxPooling2D(2)(h)
    for i in reversed(range(len(widths) - 1)):
        h = L.Conv2DTranspose(widths[i], 2, strides=2, padding="same")(h)
        h = L.Concatenate()([h, skips[i]]); h = conv(widths[i])(conv(widths[i])(h))
    h = L.Conv2D(12, 1, dtype="float32")(h)
    return keras.Model(inp, L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(h))
cands = {"current": current(), "D": D(), "D_noL3": D(blocks=(0,1,0)), "D_L3one": D(blocks=(0,1,1))}
for k, m in cands.items(): print(k, m.count_params())
x = np.random.default_rng(0).random((1, 512, 512, 3), dtype=np.float32)
fns = {k: tf.function(lambda t, m=m: m(t, training=False)) for k, m in cands.items()}
for f in fns.values(): f(x); f(x)
res_ = {k: [] for k in fns}
for r in range(4):
    for k, f in fns.items():
        s = time.perf_counter(); n = 6
        for _ in range(n): f(x).numpy()
        res_[k].append(n * 512 * 512 / (time.perf_counter() - s) / 1e6)
for k, v in res_.items(): print(f"{k}: median {np.median(v):.2f} MP/s  {['%.2f'%a for a in v]}  ratio {np.median(v)/np.median(res_['current']):.2f}")
