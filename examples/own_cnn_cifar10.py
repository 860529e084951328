"""Your own CNN on the CIFAR-10 files you already have: is it memorizing, and what helps?

    python examples/own_cnn_cifar10.py path/to/cifar-10-python.tar.gz [train_size] [epochs]

The archive (or its extracted cifar-10-batches-py/ folder) is read in place with a restricted
unpickler; nothing is downloaded. The models train on the GPU when there is one.
"""

import sys

from torch import nn

import rotelab


class SmallCNN(nn.Module):
    """A user's model: any zero-argument nn.Module factory works. Without BatchNorm, rotelab
    stacks the K models of a job and trains them at once; with it, one after another."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(128, n_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def main() -> None:
    path = sys.argv[1]
    train_size = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    common = dict(train_size=train_size, epochs=epochs, device="auto", lr=3e-3, batch_size=128)

    d = rotelab.diagnose(path, SmallCNN, seeds=2, progress=True, **common)
    print(f"diagnose: {d.verdict} {d.severity}, onset epoch {d.onset_epoch}; train {d.final['train_acc']:.1%}, "
          f"validation {d.final['val_acc']:.1%}, test {d.final['test_acc']:.1%}")

    c = rotelab.compare(path, SmallCNN, techniques="baseline,augment=flip+crop+translate,l2,augment=flip+crop+translate+l2",
                        folds=3, progress=True, **common)
    print(c.table[["technique", "val_acc", "acc_gap", "test_acc", "p_value"]].to_string(index=False))
    print("report:", rotelab.build_report([d.study_dir, c.study_dir], "runs/cifar10-report.html"))


if __name__ == "__main__":
    main()
