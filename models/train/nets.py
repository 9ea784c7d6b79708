"""The bundled Fashion-MNIST networks. Each one is small (well under 2 MB of float32 weights) and
exercises a set of channel-coupling patterns that chanopt must handle:

  resnet8         residual Add with identity and projection shortcuts (BN folded, or kept in resnet8_bn)
  densenet        Concat of the running features, BN -> ReLU -> Conv (BN not foldable), AveragePool transitions
  mobilenetv2_se  inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6 (Clip), residual Add,
                  squeeze-excite (GlobalAveragePool -> Conv -> Relu -> Conv -> Sigmoid -> Mul)
  resnext         grouped 3x3 convs (groups 8) in bottlenecks, and a Split -> two branches -> Concat block
  vgg             a plain Conv-BN-ReLU chain with MaxPools to 64 x 3 x 3, Flatten -> Gemm -> Relu -> Gemm

ResNet18Layout (not in NETS: 3 x 112 x 112 inputs, trained by train_large.py into models/large/) is the
real-size member: torchvision's ResNet-18 layout at reduced width.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


# ---------------------------------------------------------------- ResNet-8


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = conv_bn(cin, cout, 3, stride)
        self.c2 = conv_bn(cout, cout, 3, 1)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = conv_bn(cin, cout, 1, stride)  # projection shortcut

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return F.relu(self.c2(F.relu(self.c1(x))) + s)


class ResNet8(nn.Module):
    """Stem 3x3/16, three BasicBlocks 16 (identity shortcut), 32/s2, 64/s2 (projection), GAP, Linear."""

    def __init__(self, widths=(16, 32, 64), classes=10):
        super().__init__()
        self.stem = conv_bn(1, widths[0])
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet18Layout(nn.Module):
    """torchvision's ResNet-18 layout at reduced width, for 3 x 112 x 112 inputs (train_large.py).

    Stem 7x7/2 conv + BN + ReLU and 3x3/2 max pool, four stages of two BasicBlocks (the first block
    of stages 2-4 strided with a 1x1 projection shortcut), global average pool, Linear. The default
    widths are three sixteenths of torchvision's 64-128-256-512: a quarter (16-32-64-128) holds
    0.70M parameters, a 2.8 MB file, over the 2 MB limit of models/.
    """

    def __init__(self, widths=(12, 24, 48, 96), classes=10, in_channels=3):
        super().__init__()
        self.stem = conv_bn(in_channels, widths[0], k=7, stride=2)
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2, 1)
        x = self.stages(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- DenseNet


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        # count_include_pad=False: a plain AveragePool (the default adds a zero Pad node in the export)
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2, count_include_pad=False)


class DenseNet(nn.Module):
    """Stem 3x3/24 stride 2 (28 -> 14); dense blocks of 4, 4, 4 BN-ReLU-Conv3x3 layers (growth 12)
    whose outputs are concatenated to the running features (14x14, 7x7, 3x3); transitions
    BN-ReLU-Conv1x1 (halving) - AvgPool 2x2; final BN-ReLU-GAP-Linear."""

    def __init__(self, growth=12, layers=(4, 4, 4), stem=24, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, stem, 3, 2, 1, bias=False)
        mods, c = [], stem
        for i, n in enumerate(layers):
            for _ in range(n):
                mods.append(DenseLayer(c, growth))
                c += growth
            if i != len(layers) - 1:
                mods.append(Transition(c, c // 2))
                c //= 2
        self.features = nn.Sequential(*mods)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.features(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- MobileNetV2 + SE


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(8, c // r), 1)
        self.fc2 = nn.Conv2d(max(8, c // r), c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, se):
        super().__init__()
        mid = cin * expand
        layers = []
        if expand != 1:
            layers += [conv_bn(cin, mid, 1), nn.ReLU6()]
        layers += [conv_bn(mid, mid, 3, stride, groups=mid), nn.ReLU6()]  # depthwise
        if se:
            layers.append(SqueezeExcite(mid))
        layers.append(conv_bn(mid, cout, 1))  # linear bottleneck
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2SE(nn.Module):
    """Stem 3x3/16 ReLU6; inverted residual blocks (expand t, width c, stride s, SE):
    (1,16,2,-) (4,24,2,-) (4,24,1,SE) (4,40,1,SE) (4,40,1,SE) (4,64,1,-) (28 -> 14 -> 7);
    head 1x1/128 ReLU6, GAP, Linear."""

    CFG = [(1, 16, 2, False), (4, 24, 2, False), (4, 24, 1, True), (4, 40, 1, True), (4, 40, 1, True), (4, 64, 1, False)]

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 16), nn.ReLU6())
        blocks, c = [], 16
        for t, w, s, se in self.CFG:
            blocks.append(InvertedResidual(c, w, s, t, se))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(conv_bn(c, 128, 1), nn.ReLU6())
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- ResNeXt


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 grouped conv -> 1x1 expand, plus (projection) shortcut."""

    def __init__(self, cin, mid, cout, stride, groups):
        super().__init__()
        self.c1 = conv_bn(cin, mid, 1)
        self.c2 = conv_bn(mid, mid, 3, stride, groups=groups)
        self.c3 = conv_bn(mid, cout, 1)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = conv_bn(cin, cout, 1, stride)

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        y = self.c3(F.relu(self.c2(F.relu(self.c1(x)))))
        return F.relu(y + s)


class SplitBlock(nn.Module):
    """Split the channels in two halves, a 3x3 branch and a 1x1 branch, Concat, 1x1 fuse, residual Add."""

    def __init__(self, c):
        super().__init__()
        self.h = h = c // 2
        self.a = conv_bn(h, h, 3)
        self.b = conv_bn(h, h, 1)
        self.fuse = conv_bn(c, c, 1)

    def forward(self, x):
        # constant sizes: exported as one Split (x.shape-derived sizes would give Shape/Gather/Slice)
        xa, xb = torch.split(x, [self.h, self.h], dim=1)
        y = torch.cat([F.relu(self.a(xa)), F.relu(self.b(xb))], 1)
        return F.relu(self.fuse(y) + x)


class ResNeXt(nn.Module):
    """Stem 3x3/16; bottlenecks (in -> mid, groups 8 -> out): 16->32->64 s2, 64->64->128 s2,
    128->128->128 s1 (groups 8: 4, 8, 16 channels per group); a Split/Concat block at 128; GAP, Linear."""

    def __init__(self, classes=10, groups=8):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.blocks = nn.Sequential(
            Bottleneck(16, 32, 64, 2, groups),
            Bottleneck(64, 64, 128, 2, groups),
            Bottleneck(128, 128, 128, 1, groups),
            SplitBlock(128),
        )
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------- VGG


class VGG(nn.Module):
    """Conv-BN-ReLU 16, 24, pool, 48, 64, pool, 64, pool (7 -> 3), Flatten (64x3x3 = 576),
    Linear 576 -> 128, ReLU, Linear 128 -> 10."""

    def __init__(self, classes=10):
        super().__init__()

        def cbr(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *cbr(1, 16), *cbr(16, 24), nn.MaxPool2d(2),
            *cbr(24, 48), *cbr(48, 64), nn.MaxPool2d(2),
            *cbr(64, 64), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


NETS = {
    "resnet8": ResNet8,
    "densenet": DenseNet,
    "mobilenetv2_se": MobileNetV2SE,
    "resnext": ResNeXt,
    "vgg": VGG,
}
