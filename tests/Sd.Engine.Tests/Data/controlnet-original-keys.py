"""
The original-format (lllyasviel cldm) name of every tensor of ControlNetTests' ControlNet, for the test that reads an
original-format file (ControlNetOriginalFormatTests). Run from the repository root with the shared fixtures beside it:

    /usr/bin/python3 tests/Sd.Engine.Tests/Data/controlnet-original-keys.py

Writes controlnet/original-keys.json: {"control_model.<cldm name>": "<diffusers name>"}. The names follow the tables
of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py (unet_conversion_map, _resnet, _layer: written
there for SD's 4 blocks of 2 resnets, here for any count) and, for the ControlNet's own layers, the module layout of
cldm.py's ControlNet (input_hint_block: 3x3 convolutions at the even positions of a Sequential, SiLUs between;
zero_convs.i.0; middle_block_out.0), as diffusers' convert_controlnet_checkpoint reads them back. The file is made
independently of Sd's own mapping (loaders/Sd.Loaders/Checkpoints), which the test checks against it.
"""
import json, os, struct

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(ROOT, "..", "..", "..", "..", "shared", "fixtures")
OUT = os.path.join(ROOT, "controlnet", "original-keys.json")


def tensor_names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return [k for k in json.loads(f.read(n)) if k != "__metadata__"]


def conversion_table(blocks, layers, mid_layers, hint_blocks):
    """(diffusers prefix, cldm prefix) pairs, whole-name pairs first."""
    table = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("controlnet_cond_embedding.conv_in.", "input_hint_block.0."),
        ("controlnet_cond_embedding.conv_out.", f"input_hint_block.{2 * (hint_blocks + 1)}."),
        ("controlnet_mid_block.", "middle_block_out.0."),
    ]
    for k in range(hint_blocks):
        table.append((f"controlnet_cond_embedding.blocks.{k}.", f"input_hint_block.{2 * (k + 1)}."))
    stride = layers + 1
    for i in range(blocks):
        for j in range(layers):
            table.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{stride * i + j + 1}.0."))
            table.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{stride * i + j + 1}.1."))
        table.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{stride * (i + 1)}.0.op."))
    # One zero conv per skip: conv_in's, then one per resnet and per downsampler.
    for i in range(1 + blocks * layers + (blocks - 1)):
        table.append((f"controlnet_down_blocks.{i}.", f"zero_convs.{i}.0."))
    for j in range(mid_layers):
        table.append((f"mid_block.resnets.{j}.", f"middle_block.{2 * j}."))
        table.append((f"mid_block.attentions.{j}.", f"middle_block.{2 * j + 1}."))
    return table


RESNET = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("norm2.", "out_layers.0."),
          ("conv2.", "out_layers.3."), ("time_emb_proj.", "emb_layers.1."), ("conv_shortcut.", "skip_connection.")]


def original_name(name, table):
    # The longest matching prefix is the most specific rule.
    matches = [(d, o) for d, o in table if name.startswith(d)]
    assert matches, name
    d, o = max(matches, key=lambda m: len(m[0]))
    rest = name[len(d):]
    if ".resnets." in d:
        renamed = [o2 + rest[len(d2):] for d2, o2 in RESNET if rest.startswith(d2)]
        assert len(renamed) == 1, name
        rest = renamed[0]
    return "control_model." + o + rest


def main():
    unet = tensor_names(os.path.join(FIXTURES, "tiny", "model", "unet", "diffusion_pytorch_model.safetensors"))
    encoder = [k for k in unet if k.split(".")[0] in ("conv_in", "time_embedding", "down_blocks", "mid_block")]
    extra = tensor_names(os.path.join(ROOT, "controlnet", "extra.safetensors"))
    with open(os.path.join(ROOT, "controlnet", "shared_image", "config.json")) as f:
        config = json.load(f)
    blocks = len(config["block_out_channels"])
    hint_blocks = 2 * (len(config["conditioning_embedding_out_channels"]) - 1)
    mid_layers = 1 + max(int(k.split(".")[2]) for k in encoder if k.startswith("mid_block.resnets."))
    table = conversion_table(blocks, config["layers_per_block"], mid_layers, hint_blocks)
    names = {original_name(k, table): k for k in encoder + extra}
    assert len(names) == len(encoder) + len(extra), "two tensors under one original name"
    with open(OUT, "w") as f:
        json.dump(dict(sorted(names.items())), f, indent=1)
    print(f"{len(names)} names -> {OUT}")


if __name__ == "__main__":
    main()
