"""Least-squares init of a drop_top_level student's two new layers; PSNR before/after."""
import sys, glob, numpy as np, tensorflow as tf
from PIL import Image
from tfdenoise import checkpoints, models
from tfdenoise.degradations import catalog

teacher = checkpoints.load_model("/work/main/training/real-stage9/best.keras")
student = models.built(models.UNet(widths=(64, 128, 256), blocks=(0, 1, 2), unshuffle=2, name="unet"))
models.copy_weights(teacher, student)
rng = np.random.default_rng(0)
files = sorted(glob.glob("/work/corpus-s2/*"))
crops = []
for f in rng.choice(files, 64, replace=False):
    a = np.asarray(Image.open(f).convert("RGB"))
    if min(a.shape[:2]) < 128: continue
    y, x = rng.integers(0, a.shape[0] - 127), rng.integers(0, a.shape[1] - 127)
    crops.append(a[y:y+128, x:x+128])
clean = tf.constant(np.stack(crops), tf.float32) / 255.0
noise = catalog.build_noise("blind", weights={"clean": .1, "compressed": .3, "uniform": .5})
noisy = noise(clean, tf.constant([1, 2]))
def psnr(a): return float(tf.reduce_mean(tf.image.psnr(tf.clip_by_value(a, 0, 1), clean, 1.0)))
print("noisy", psnr(noisy), "teacher", psnr(teacher(noisy)), "student raw", psnr(student(noisy)))

def preact(conv, x):
    return tf.nn.bias_add(tf.nn.conv2d(x, conv.kernel, 1, "SAME"), conv.bias)
def patches(x):
    return tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
def lstsq(X, Y, ridge=1e-3):
    X = np.concatenate([X, np.ones((len(X), 1), X.dtype)], 1).astype(np.float64)
    A = X.T @ X + ridge * np.eye(X.shape[1]); return np.linalg.solve(A, X.T @ Y.astype(np.float64))

# 1. first conv: match the teacher's level-1 first-conv pre-activation
t_in = teacher.pools[0](teacher.encoder_blocks[0](noisy))
target = preact(teacher.encoder_blocks[1].layers[0], t_in).numpy().reshape(-1, 64)
X = patches(tf.nn.space_to_depth(noisy, 2)).numpy().reshape(-1, 108)
W = lstsq(X, target)
first = student.encoder_blocks[0].layers[0]
first.set_weights([W[:-1].reshape(3, 3, 12, 64).astype(np.float32), W[-1].astype(np.float32)])
pred = X @ W[:-1] + W[-1]
print("first conv fit R2", 1 - ((pred - target) ** 2).sum() / ((target - target.mean(0)) ** 2).sum())
print("student after first-conv LS", psnr(student(noisy)))

# 2. head: match the teacher's noise estimate, unshuffled
def features(m, images):
    hidden = tf.nn.space_to_depth(images, m.unshuffle); skips = []
    rb = m.residual_blocks
    for level, block in enumerate(m.encoder_blocks):
        hidden = block(hidden)
        for r in rb[level]: hidden = r(hidden)
        if level < len(m.pools): skips.append(hidden); hidden = m.pools[level](hidden)
    for level in reversed(range(len(m.decoder_blocks))):
        hidden = m.upsamplers[level](hidden); hidden = m.concat([hidden, skips[level]])
        hidden = m.decoder_blocks[level](hidden)
    return hidden
F = features(student, noisy).numpy().reshape(-1, 64)
T = tf.nn.space_to_depth(noisy - teacher(noisy), 2).numpy().reshape(-1, 12)
W = lstsq(F, T)
student.head.set_weights([W[:-1].reshape(1, 1, 64, 12).astype(np.float32), W[-1].astype(np.float32)])
print("student after head LS", psnr(student(noisy)))
if len(sys.argv) > 1: student.save(sys.argv[1]); print("saved", sys.argv[1])
