"""Writes a tiny LLaVA processor and three PNG images for test/Tools/prepare-dataset.test.

  make-processor.py OUTDIR    -> OUTDIR/processor/ (AutoProcessor-loadable), OUTDIR/images/{red,green,blue}.png

Nothing is downloaded: the tokenizer is a `tokenizers` WordLevel model (whitespace
pre-tokenizer, "<s> $A" post-processor) over a 320-id vocabulary laid out like the
llava_ts fixture's (<pad> 0, <s> 1, </s> 2, <image> 300); the image processor is
CLIP's (32x32, what llava_ts's vision tower takes); LlavaProcessor expands one
<image> into 16 image tokens (patch 8, CLS dropped by the "default" strategy).
"""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast  # noqa: E402

WORDS = ["describe", "the", "image", ":", "a", "red", "green", "blue", "square", "circle", "triangle",
         "what", "colour", "is", "it", "?", "shape", "on", "dark", "background", "this", "picture", "shows"]


def main():
    out = sys.argv[1]
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for i, w in enumerate(WORDS):
        vocab[w] = 10 + i
    vocab["<image>"] = 300
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(image_processor=image, tokenizer=fast, patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, image_token="<image>")
    proc.save_pretrained(os.path.join(out, "processor"))

    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    for name, rgb in (("red", (230, 25, 25)), ("green", (25, 200, 50)), ("blue", (25, 50, 230))):
        img = Image.new("RGB", (48, 40), (25, 25, 30))  # not 32x32: the processor resizes and crops
        for y in range(10, 30):
            for x in range(14, 34):
                img.putpixel((x, y), rgb)
        img.save(os.path.join(out, "images", name + ".png"))


if __name__ == "__main__":
    main()
