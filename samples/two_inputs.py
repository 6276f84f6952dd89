"""Two positional inputs of different dtypes: token ids through an embedding and an LSTM, and
an image through a conv, joined by a Linear.

    archscope summary samples/two_inputs.py:TextAndImage --input 1x128:int64 --input 1x3x32x32
"""
import torch
from torch import nn


class TextAndImage(nn.Module):
    """Token ids and an image, as two positional inputs of forward."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.lstm = nn.LSTM(64, 64, batch_first=True)
        self.conv = nn.Conv2d(3, 64, 3, stride=2)
        self.head = nn.Linear(128, 10)

    def forward(self, ids, image):
        text = self.lstm(self.embed(ids))[0][:, -1]
        pic = self.conv(image).mean((2, 3))
        return self.head(torch.cat([text, pic], 1))
