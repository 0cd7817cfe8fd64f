using System.Buffers.Binary;
using System.Text;
using Sd.Loaders.Bmp;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Embeddings;
using Sd.Loaders.Jpeg;
using Sd.Loaders.Lora;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Webp;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Seeded random damage to valid files of every format the loaders read, LoRAs and embeddings too (byte changes, bit flips, truncation,
/// insertion, deletion; PNGs also with their CRCs recomputed, so the damage reaches the header fields and the zlib
/// stream): each file either loads or fails with an <see cref="InvalidFileException"/> naming it, never another
/// exception. The hand-written hostile cases of each format's own tests say which message each flaw gets; these
/// catch the flaws nobody wrote a case for. About a million such files (a throwaway harness, many seeds, tokenizer
/// files and embeddings too) ran clean before this test took a fixed sample of them.
/// </summary>
public sealed class MutatedInputTests : IDisposable
{
    private const int Files = 1500;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Damaged_safetensors_files_load_or_fail_naming_the_file()
    {
        var writer = new SafetensorsWriter();
        writer.AddMetadata("format", "pt");
        writer.AddFloat32("a.weight", [4, 3], new float[12]);
        writer.Add("b.bias", TensorDType.F16, [5], new byte[10]);
        writer.Add("c", TensorDType.BF16, [2, 2], new byte[8]);
        string valid = _dir.File("valid.safetensors");
        writer.Save(valid);
        AssertEachLoadsOrNamesItself(File.ReadAllBytes(valid), "safetensors", 1, path =>
        {
            using SafetensorsFile file = SafetensorsFile.Open(path);
            foreach (TensorInfo tensor in file.Tensors)
            {
                file.ReadFloat32(tensor, new float[tensor.ElementCount]);
            }
        });
    }

    [Fact]
    public void Damaged_pngs_load_or_fail_naming_the_file()
    {
        string valid = _dir.File("valid.png");
        var pixels = new byte[8 * 6 * 3];
        new Random(0).NextBytes(pixels);
        PngFile.Write(valid, new PngImage(8, 6, 3, pixels, new Dictionary<string, string> { ["parameters"] = "a cat, Steps: 20" }));
        byte[] bytes = File.ReadAllBytes(valid);
        AssertEachLoadsOrNamesItself(bytes, "png", 2, path => PngFile.Read(path), someLoad: false); // the CRCs catch nearly all
        // With the CRCs made right again, the damage gets past the chunk checks into IHDR, zlib and the text.
        AssertEachLoadsOrNamesItself(bytes, "png", 3, path => PngFile.Read(path), WithCrcsRecomputed);
    }

    /// <summary>
    /// The same for palette, sub-byte, 16-bit, gray+alpha and interlaced pictures (PngFormatTests' files), CRCs made
    /// right, so the damage reaches PLTE, tRNS, the bit depth, the interlace flag and the packed rows.
    /// </summary>
    [Fact]
    public void Damaged_pngs_of_every_format_load_or_fail_naming_the_file()
    {
        int seed = 100;
        foreach (byte[] png in ReferenceFiles.Files(ReferenceFiles.Png, "png"))
        {
            AssertEachLoadsOrNamesItself(png, "png", seed++, path => PngFile.Read(path), WithCrcsRecomputed);
        }
    }

    /// <summary>PNGs carrying an orientation (eXIf, ImageMagick's raw profile, XMP), damaged with CRCs made right and
    /// read upright: the damage reaches the EXIF, the hex and the XMP text.</summary>
    [Fact]
    public void Damaged_oriented_pngs_read_upright_or_fail_naming_the_file()
    {
        int seed = 200;
        foreach (byte[] png in ReferenceFiles.Files(ReferenceFiles.Png, "png", "oriented"))
            AssertEachLoadsOrNamesItself(png, "png", seed++, path => PngFile.ReadUpright(path), WithCrcsRecomputed);
    }

    /// <summary>
    /// Every JPEG layout of JpegFormatTests (baseline, progressive with refinements, restarts, every sampling, gray,
    /// RGB, CMYK and YCCK), damaged: the damage reaches the tables, the frame and scan headers and the entropy-coded
    /// data.
    /// </summary>
    [Fact]
    public void Damaged_jpegs_load_or_fail_naming_the_file()
    {
        int seed = 200;
        foreach (byte[] jpeg in ReferenceFiles.Files(ReferenceFiles.Jpeg, "jpeg"))
        {
            AssertEachLoadsOrNamesItself(jpeg, "jpg", seed++, path => JpegFile.Read(path));
        }
    }

    /// <summary>
    /// Every WebP of WebpFormatTests (lossy with each filter, partitions and alpha kind; lossless with transforms,
    /// colour cache and palettes; animations), damaged: the damage reaches the container, the animation frames, the
    /// frame headers, the partitions, the prefix codes and the coded pixels.
    /// </summary>
    [Fact]
    public void Damaged_webps_load_or_fail_naming_the_file()
    {
        int seed = 300;
        foreach (byte[] webp in ReferenceFiles.Files(ReferenceFiles.Webp, "webp"))
        {
            AssertEachLoadsOrNamesItself(webp, "webp", seed++, path => WebpFile.Read(path));
        }
    }

    /// <summary>Every BMP of BmpFormatTests (every header, depth, bitfields layout and run-length kind), damaged.</summary>
    [Fact]
    public void Damaged_bmps_load_or_fail_naming_the_file()
    {
        int seed = 400;
        foreach (byte[] bmp in ReferenceFiles.Files(ReferenceFiles.Bmp, "bmp"))
        {
            AssertEachLoadsOrNamesItself(bmp, "bmp", seed++, path => BmpFile.Read(path));
        }
    }

    [Fact]
    public void Damaged_npy_files_load_or_fail_naming_the_file()
    {
        string valid = _dir.File("valid.npy");
        NpyFile.Write(valid, NpyArray.FromFloat32(new float[24], [2, 3, 4]));
        AssertEachLoadsOrNamesItself(File.ReadAllBytes(valid), "npy", 4, path => NpyFile.Read(path));
    }

    [Fact]
    public void Damaged_loras_and_embeddings_load_or_fail_naming_the_file()
    {
        var lora = new LoraWriter();
        lora.Add(ModelComponent.Unet, "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q.weight", [64, 64], rank: 4, alpha: 2f, seed: 1);
        lora.Add(ModelComponent.TextEncoder, "text_model.encoder.layers.0.self_attn.q_proj.weight", [32, 32], rank: 2, alpha: null, seed: 2);
        string loraPath = lora.Save(_dir.File("valid-lora.safetensors"));
        AssertEachLoadsOrNamesItself(File.ReadAllBytes(loraPath), "safetensors", 9, path =>
        {
            using LoraFile file = LoraFile.Open(path);
        });

        var embedding = new SafetensorsWriter();
        embedding.AddFloat32("emb_params", [2, 8], new float[16]);
        string embeddingPath = _dir.File("valid-embedding.safetensors");
        embedding.Save(embeddingPath);
        AssertEachLoadsOrNamesItself(File.ReadAllBytes(embeddingPath), "safetensors", 10, path => TextualInversionFile.Read(path));
    }

    [Fact]
    public void Damaged_configs_load_or_fail_naming_the_file()
    {
        const string scheduler = """{"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false}""";
        const string unet = """{"in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 8, "norm_num_groups": 32, "sample_size": 8}""";
        const string vae = """{"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 1, "norm_num_groups": 32, "scaling_factor": 0.18215}""";
        const string text = """{"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 77, "vocab_size": 1000, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05}""";
        const string controlNet = """{"_class_name": "ControlNetModel", "conditioning_embedding_out_channels": [8, 16], "attention_head_dim": 8, "block_out_channels": [32, 64], "cross_attention_dim": 32, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "layers_per_block": 2, "controlnet_conditioning_channel_order": "rgb", "global_pool_conditions": false}""";
        const string adapter = """{"_class_name": "T2IAdapter", "adapter_type": "full_adapter", "channels": [320, 640, 1280, 1280], "downscale_factor": 8, "in_channels": 1, "num_res_blocks": 2}""";
        (string Json, Action<JsonConfig> Read)[] configs =
        [
            (scheduler, json => SchedulerConfig.From(json)),
            (unet, json => UNetConfig.From(json)),
            (vae, json => VaeConfig.From(json)),
            (text, json => ClipTextConfig.From(json)),
            (controlNet, json => ControlNetConfig.From(json)),
            (adapter, json => T2IAdapterConfig.From(json)),
        ];
        for (int c = 0; c < configs.Length; c++)
        {
            (string json, Action<JsonConfig> read) = configs[c];
            read(JsonConfig.Parse("config.json", Encoding.UTF8.GetBytes(json))); // the undamaged config loads
            AssertEachLoadsOrNamesItself(Encoding.UTF8.GetBytes(json), "json", 5 + c, path => read(JsonConfig.Load(path)));
        }
    }

    /// <summary>An original ControlNet's yaml (lllyasviel's layout): damaged, it reads or names itself, never hangs or throws otherwise.</summary>
    [Fact]
    public void Damaged_controlnet_yamls_load_or_fail_naming_the_file()
    {
        const string yaml = """
            model:
              target: cldm.cldm.ControlLDM
              params:
                linear_start: 0.00085
                first_stage_key: "jpg"
                control_stage_config:
                  target: cldm.cldm.ControlNet
                  params:
                    image_size: 32 # unused
                    attention_resolutions: [ 4, 2, 1 ]
                    num_heads: 8
                    num_head_channels: -1
                    global_average_pooling: True
                    context_dim: 768
                first_stage_config:
                  params:
                    ddconfig:
                      ch_mult:
                      - 1
                      - 2
            """;
        AssertEachLoadsOrNamesItself(Encoding.UTF8.GetBytes(yaml), "yaml", 11, path => CldmYaml.Read(path));
    }

    /// <summary>
    /// Writes <see cref="Files"/> damaged copies of <paramref name="valid"/> (seeded by <paramref name="seed"/>) and
    /// reads each with <paramref name="read"/>: it loads, or throws an <see cref="InvalidFileException"/> whose message
    /// names the file. Anything else fails the test with the file's number and the exception.
    /// </summary>
    private void AssertEachLoadsOrNamesItself(byte[] valid, string extension, int seed, Action<string> read, Func<byte[], byte[]>? fixUp = null, bool someLoad = true)
    {
        var random = new Random(seed);
        int loaded = 0;
        for (int i = 0; i < Files; i++)
        {
            byte[] damaged = FileDamage.Damage(valid, random);
            string name = $"damaged-{seed}-{i}.{extension}";
            string path = _dir.Write(name, fixUp is null ? damaged : fixUp(damaged));
            try
            {
                read(path);
                loaded++;
            }
            catch (InvalidFileException e)
            {
                Assert.True(e.Message.Contains(name, StringComparison.Ordinal), $"file {i}: the message does not name the file: {e.Message}");
            }
            catch (Exception e)
            {
                Assert.Fail($"damaged {extension} file {i} (seed {seed}) threw {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            File.Delete(path);
        }
        // Some damage is harmless (a changed tensor value, a pixel, a digit): the loads show the files were read at all.
        Assert.InRange(loaded, someLoad ? 1 : 0, Files - 1);
    }

    /// <summary>Every whole chunk's CRC recomputed over its (damaged) type and data.</summary>
    private static byte[] WithCrcsRecomputed(byte[] png)
    {
        int at = 8;
        while (at + 12 <= png.Length)
        {
            long length = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
            if (at + 12 + length > png.Length)
            {
                break;
            }
            uint crc = Crc32.Compute(png.AsSpan(at + 4, 4 + (int)length));
            BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(at + 8 + (int)length), crc);
            at += 12 + (int)length;
        }
        return png;
    }
}
