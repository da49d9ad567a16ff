"""Distil a drop_top_level student's new/adapted layers from the teacher, rest frozen."""
import sys, glob, time, numpy as np, tensorflow as tf, keras
from PIL import Image
from tfdenoise import checkpoints, models
from tfdenoise.degradations import catalog
keras.mixed_precision.set_global_policy("mixed_bfloat16")
steps = int(sys.argv[1]); out = sys.argv[2] if sys.argv[2] != "-" else None
teacher = checkpoints.load_model("/work/main/training/real-stage9/best.keras", policy="mixed_bfloat16")
student = models.built(models.UNet(widths=(64, 128, 256), blocks=(0, 1, 2), unshuffle=2, name="unet"))
models.copy_weights(teacher, student)
rng = np.random.default_rng(0)
files = sorted(glob.glob("/work/corpus-s2/*"))
imgs = [np.asarray(Image.open(f).convert("RGB")) for f in files]
imgs = [a for a in imgs if min(a.shape[:2]) >= 128]
def batch(n=16):
    out = []
    for i in rng.integers(0, len(imgs), n):
        a = imgs[i]; y, x = rng.integers(0, a.shape[0] - 127), rng.integers(0, a.shape[1] - 127)
        out.append(a[y:y+128, x:x+128])
    return tf.constant(np.stack(out), tf.float32) / 255.0
noise = catalog.build_noise("blind", weights={"clean": .1, "compressed": .3, "uniform": .5})
trainable = student.encoder_blocks[0].trainable_variables + student.decoder_blocks[0].trainable_variables + student.head.trainable_variables
opt = keras.optimizers.Adam(float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3)
def t_feat(x):
    return teacher.encoder_blocks[1](teacher.pools[0](teacher.encoder_blocks[0](x)))
@tf.function(jit_compile=False)
def step(clean, seed):
    noisy = noise(clean, seed)
    t_out = tf.stop_gradient(teacher(noisy)); tf_ = tf.stop_gradient(tf.cast(t_feat(noisy), tf.float32))
    with tf.GradientTape() as tape:
        s_feat = tf.cast(student.encoder_blocks[0](tf.nn.space_to_depth(noisy, 2)), tf.float32)
        s_out = student(noisy)
        lf = tf.reduce_mean(tf.square(s_feat - tf_)); lo = tf.reduce_mean(tf.abs(s_out - t_out))
        loss = lo + 0.1 * lf
    g = tape.gradient(loss, trainable); opt.apply(g, trainable)
    return lo, lf
val = batch(48); vnoisy = noise(val, tf.constant([7, 7]))
def psnr(a, c): return float(tf.reduce_mean(tf.minimum(tf.image.psnr(tf.clip_by_value(a, 0, 1), c, 1.0), 60.0)))
print("val: noisy", psnr(vnoisy, val), "teacher", psnr(teacher(vnoisy), val), "student", psnr(student(vnoisy), val), flush=True)
t0 = time.time()
for i in range(1, steps + 1):
    lo, lf = step(batch(), tf.constant([i, 3]))
    if i % 50 == 0:
        d0 = student.decoder_blocks[0]
        print(i, f"{time.time()-t0:.0f}s out-L1 {float(lo):.4f} feat {float(lf):.4f} val student {psnr(student(vnoisy), val):.2f}", flush=True)
if out: student.save(out); print("saved", out)
