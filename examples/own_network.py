"""Your own numpy network, with your own layer class, on your own arrays, on every core.

    python examples/own_network.py

No `if __name__ == "__main__":` guard is needed: partrain's workers never re-run this
script; they receive the model itself (LeakyReLU included) from the coordinator.
"""

import numpy as np
from sklearn.datasets import load_digits

import partrain
from partrain.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D


class LeakyReLU(Layer):
    """y = x for x > 0, slope * x otherwise. x: any shape -> y: the same shape."""

    def __init__(self, slope=0.05):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        return np.where(x > 0, x, self.slope * x), x

    def backward(self, dy, x):
        return np.where(x > 0, dy, self.slope * dy), {}   # no parameters, no grads


digits = load_digits()                       # 1797 grey 8x8 images, values 0..16
X, y = digits.images[:, None] / 16.0, digits.target
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]

model = partrain.Sequential([Conv2D(1, 16, 3, pad=1), LeakyReLU(), MaxPool2D(2),
                             Flatten(), Dense(16 * 4 * 4, 10)],
                            partrain.SoftmaxCrossEntropy(), seed=0)
history = partrain.fit(model, X_train, y_train, epochs=5, batch_size=32, optimizer="adam",
                       lr=0.01, validation_split=0.1, test_data=(X_test, y_test),
                       out="runs/own-network", overwrite=True, progress=False)
print(f"val accuracy per epoch: {[round(a, 3) for a in history['val_acc']]}")
print(f"test accuracy {history.metrics['test_acc']:.3f} on {history.metrics['workers']} "
      f"{history.metrics['backend']} workers")

# LeakyReLU is a class of our own, so the model comes back from model.pkl, whose
# unpickling runs code: fine for a run we just wrote, never for one sent to us.
model, history = partrain.load_run("runs/own-network", allow_pickle=True)
print("first test predictions:", partrain.predict(model, X_test[:10]), "labels:", y_test[:10])
