# Run in three parts: plain and unshuf for 300 steps, unshuf64 and unshuf32x3 for 600, and
# plain and unshuf for 300 with --zero-head (heads zero-initialised: output = input at first).
import glob, sys, numpy as np, tensorflow as tf, keras, time
ZERO_HEAD = "--zero-head" in sys.argv
from PIL import Image
from tfdenoise import models, losses
rng = np.random.default_rng(0)
imgs = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(glob.glob("/work/corpus-s2/*"))[:200]]
def batch(n=16):
    out = []
    for i in rng.integers(0, len(imgs), n):
        a = imgs[i]; y, x = rng.integers(0, a.shape[0] - 63), rng.integers(0, a.shape[1] - 63)
        out.append(a[y:y+64, x:x+64])
    return tf.constant(np.stack(out), tf.float32) / 255.0
val = batch(64); vn = val + tf.random.stateless_normal(val.shape, [1, 1]) * 25 / 255
def psnr(a): return float(tf.reduce_mean(tf.image.psnr(tf.clip_by_value(a, 0, 1), val, 1.0)))
for name, m in [("plain", models.UNet(widths=(16, 32, 64))), ("unshuf", models.UNet(widths=(32, 64), unshuffle=2)),
                ("unshuf64", models.UNet(widths=(64, 64), unshuffle=2)), ("unshuf32x3", models.UNet(widths=(32, 64, 64), unshuffle=2))]:
    m = models.built(m); opt = keras.optimizers.Adam(1e-3)
    if ZERO_HEAD:
        k, b = m.head.get_weights(); m.head.set_weights([0 * k, 0 * b])
    @tf.function
    def step(c, seed):
        n = c + tf.random.stateless_normal(tf.shape(c), seed) * 25 / 255
        with tf.GradientTape() as t:
            loss = tf.reduce_mean(tf.abs(m(n, training=True) - c))
        g = t.gradient(loss, m.trainable_variables); opt.apply(g, m.trainable_variables); return loss
    for i in range(1, 601):
        step(batch(), tf.constant([i, 0]))
        if i % 100 == 0: print(name, i, psnr(vn), psnr(m(vn)), flush=True)
