using Sd.Engine.Pipelines;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

using static Sd.Engine.Tests.SteeredRuns;

namespace Sd.Engine.Tests;

/// <summary>
/// ControlNets in the pipeline (the numerics of the ControlNet and of the UNet's residuals are ControlNetTests'): what
/// a unit changes and when it runs, picture sizes, several units, inpainting UNets, and units that do not fit the model.
/// </summary>
public sealed class ControlNetPipelineTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly GenerateRequest Request = new()
    {
        Prompt = "a photo of an astronaut riding a horse on mars", NegativePrompt = "blurry", Steps = 4, Width = 32, Height = 24,
        Seed = 42, Scheduler = "dpm++-2m", GuidanceScale = 7.5f,
    };

    [FixtureFact]
    public void A_unit_steers_the_steps_of_its_window_and_a_zero_scale_changes_nothing()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        var unit = new ControlNetUnit(controlNet, Picture(32, 24, 1));
        float[] none = Latents(pipeline, Request);
        float[] zero = Latents(pipeline, Request with { ControlNets = [unit with { Scale = 0 }] });
        Assert.Equal(none, zero);

        float[] all = Latents(pipeline, Request with { ControlNets = [unit] });
        float[] firstHalf = Latents(pipeline, Request with { ControlNets = [unit with { GuidanceEnd = 0.5f }] });
        float[] secondHalf = Latents(pipeline, Request with { ControlNets = [unit with { GuidanceStart = 0.5f }] });
        float[] guess = Latents(pipeline, Request with { ControlNets = [unit with { GuessMode = true }] });
        float[][] runs = [none, all, firstHalf, secondHalf, guess];
        AssertAllDiffer(runs);
        // The same request again: the kept conditioning embedding and context projections change nothing.
        Assert.Equal(all, Latents(pipeline, Request with { ControlNets = [unit] }));
        // Two units sum their residuals: this one twice at half the scale is the one unit (within rounding).
        float[] halves = Latents(pipeline, Request with { ControlNets = [unit with { Scale = 0.5f }, unit with { Scale = 0.5f }] });
        Assert.True(Compare.RelativeL2(all, halves) < 1e-5, $"two halves differ from the whole by {Compare.RelativeL2(all, halves):E2}");
    }

    [FixtureFact]
    public void A_picture_of_any_size_is_resized_to_each_pass()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        PngImage small = Picture(16, 12, 2);
        float[] resized = Latents(pipeline, Request with { ControlNets = [new ControlNetUnit(controlNet, small)] });
        float[] given = Latents(pipeline, Request with
        {
            ControlNets = [new ControlNetUnit(controlNet, Imaging.PictureResize.Resize(small, 32, 24, Imaging.ResizeMode.Just))],
        });
        Assert.Equal(given, resized);
        // Cropped or filled to the pass's aspect ratio (a 16x12 picture for a 32x24 pass has it already: a wide one).
        PngImage wide = Picture(30, 12, 3);
        foreach (Imaging.ResizeMode mode in new[] { Imaging.ResizeMode.Crop, Imaging.ResizeMode.Fill })
        {
            float[] byMode = Latents(pipeline, Request with { ControlNets = [new ControlNetUnit(controlNet, wide) { Resize = mode }] });
            float[] done = Latents(pipeline, Request with
            {
                ControlNets = [new ControlNetUnit(controlNet, Imaging.PictureResize.Resize(wide, 32, 24, mode))],
            });
            Assert.Equal(done, byMode);
            Assert.True(Compare.RelativeL2(byMode, Latents(pipeline, Request with { ControlNets = [new ControlNetUnit(controlNet, wide)] })) > 1e-4,
                $"{mode} steers as the stretched picture does");
        }
        var rgba = new PngImage(16, 12, 4, new byte[16 * 12 * 4]);
        Assert.All(Latents(pipeline, Request with { ControlNets = [new ControlNetUnit(controlNet, rgba)], Hires = new HiresFix { Width = 64, Height = 48, Steps = 2 } }),
            v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// Beside a 9-channel inpainting UNet a ControlNet sees the scaled latents alone, not the mask and masked picture
    /// the UNet's input adds (diffusers' StableDiffusionControlNetInpaintPipeline: control_model_input is the latent
    /// model input before that concatenation): its residuals are those of a 4-channel input made of the latents.
    /// </summary>
    [FixtureFact]
    public void Beside_an_inpainting_unet_a_unit_sees_the_latents_alone()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        var unit = new ControlNetUnit(controlNet, Picture(24, 16, 4));
        int h = 6, w = 8;
        using Tensor context = RandomTensors.Uniform([2, 7, 32], 1), scaled = RandomTensors.Uniform([1, h, w, 4], 2), wide = RandomTensors.Uniform([2, h, w, 9], 3);
        using Tensor latents = Tensor.Allocate([2, h, w, 4]);
        scaled.Span.CopyTo(latents.Span);
        scaled.Span.CopyTo(latents.Span[(int)scaled.Length..]);
        foreach (ControlNetUnit u in new[] { unit, unit with { GuessMode = true } })
        {
            using ControlNetPass inpainting = ControlNetPass.Create([u], wide, 4, context, guided: true, factor: 2)!;
            using ControlNetPass plain = ControlNetPass.Create([u], latents, 4, context, guided: true, factor: 2)!;
            ControlResiduals a = inpainting.Run(0, 1, wide, scaled, [500f], context, [], guided: true, CancellationToken.None)!;
            ControlResiduals b = plain.Run(0, 1, latents, null, [500f], context, [], guided: true, CancellationToken.None)!;
            for (int i = 0; i <= a.SkipCount; i++)
            {
                using Tensor x = a.Copy(i), y = b.Copy(i);
                Assert.True(x.Span.IndexOfAnyExcept(0f) >= 0, $"residual {i} is all 0");
                Assert.True(x.Span.SequenceEqual(y.Span), $"guess mode {u.GuessMode}: residual {i} differs");
            }
        }
    }

    /// <summary>
    /// A1111's Control Modes: "My prompt is more important" weights residual i (the skips, then the mid block) by
    /// 0.825^(12 - i) in every row, as A1111 does whatever the ControlNet's depth, bit for bit the balanced residuals times that weight; "ControlNet is more important"
    /// does so on the conditioned row only and leaves the unconditioned one 0. Neither goes with diffusers' guess mode.
    /// </summary>
    [FixtureFact]
    public void Control_modes_weight_the_residuals_by_depth_as_a1111()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        var unit = new ControlNetUnit(controlNet, Picture(24, 16, 4));
        int h = 6, w = 8;
        using Tensor context = RandomTensors.Uniform([2, 7, 32], 1), latents = RandomTensors.Uniform([2, h, w, 4], 2);
        ControlResiduals Run(ControlNetPass pass) => pass.Run(0, 1, latents, null, [500f], context, [], guided: true, CancellationToken.None)!;
        using ControlNetPass balanced = ControlNetPass.Create([unit], latents, 4, context, guided: true, factor: 2)!;
        using ControlNetPass prompt = ControlNetPass.Create([unit with { Mode = ControlMode.PromptMoreImportant }], latents, 4, context, guided: true, factor: 2)!;
        using ControlNetPass control = ControlNetPass.Create([unit with { Mode = ControlMode.ControlNetMoreImportant }], latents, 4, context, guided: true, factor: 2)!;
        ControlResiduals a = Run(balanced), b = Run(prompt), c = Run(control);
        int count = a.SkipCount;
        for (int i = 0; i <= count; i++)
        {
            using Tensor plain = a.Copy(i), soft = b.Copy(i), injected = c.Copy(i);
            float weight = (float)Math.Pow(0.825, 12 - i);
            Assert.True(plain.Span.IndexOfAnyExcept(0f) >= 0, $"residual {i} is all 0");
            for (int k = 0; k < plain.Length; k++)
            {
                Assert.Equal(plain.Span[k] * weight, soft.Span[k]);
            }
            int half = (int)plain.Length / 2;
            Assert.True(injected.Span[..half].IndexOfAnyExcept(0f) < 0, $"residual {i}: the unconditioned row got something");
            double error = Compare.RelativeL2(soft.Span[half..].ToArray(), injected.Span[half..].ToArray());
            Assert.True(error < 1e-5, $"residual {i}: the conditioned row differs from the soft one by {error:E2}");
        }
        // SD's 12 skips: A1111's weight * 0.825 ** float(12 - i) in double, then float32; the mid block's is the weight.
        Assert.Equal((float)(0.8f * 0.09941396206337118), ControlNetModel.ResidualScale(0.8f, ResidualWeighting.Soft, 0, 12));
        Assert.Equal((float)(0.8f * 0.825), ControlNetModel.ResidualScale(0.8f, ResidualWeighting.Soft, 11, 12));
        Assert.Equal(0.8f, ControlNetModel.ResidualScale(0.8f, ResidualWeighting.Soft, 12, 12));

        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        string message = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with
        {
            ControlNets = [unit with { GuessMode = true, Mode = ControlMode.PromptMoreImportant }],
        })).Message;
        Assert.Contains("guess mode (diffusers') goes with the balanced mode only", message);
    }

    /// <summary>
    /// A1111's forced soft injection in a hires fix's second pass: without a hires fix it changes nothing; with one it
    /// changes the run, and a unit already soft ("My prompt is more important") is the same with or without it.
    /// </summary>
    [FixtureFact]
    public void Soft_weights_in_the_hires_pass_change_only_that_pass()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        var unit = new ControlNetUnit(controlNet, Picture(32, 24, 1));
        ControlNetUnit soft = unit with { SoftInHires = true };
        Assert.Equal(Latents(pipeline, Request with { ControlNets = [unit] }), Latents(pipeline, Request with { ControlNets = [soft] }));
        GenerateRequest hires = Request with { Hires = new HiresFix { Width = 64, Height = 48, Steps = 2 } };
        Assert.NotEqual(Latents(pipeline, hires with { ControlNets = [unit] }), Latents(pipeline, hires with { ControlNets = [soft] }));
        ControlNetUnit prompt = unit with { Mode = ControlMode.PromptMoreImportant };
        Assert.Equal(Latents(pipeline, hires with { ControlNets = [prompt] }), Latents(pipeline, hires with { ControlNets = [prompt with { SoftInHires = true }] }));
    }

    /// <summary>
    /// The inpainting condition (diffusers' make_inpaint_condition): RGB / 255 with -1 where the mask's gray is above
    /// 0.5 (128 and up), then nearest neighbours to the pass (PyTorch's floor(i x in / out), 2x repeating each pixel).
    /// </summary>
    [Fact]
    public void An_inpainting_condition_is_the_picture_with_minus_one_under_the_mask()
    {
        PngImage picture = Picture(5, 4, 7);
        var gray = new byte[5 * 4];
        gray[0] = 127; // 127 / 255 is below 0.5
        gray[1] = 128;
        gray[7] = 255;
        var rgbMask = new byte[5 * 4 * 3];
        for (int i = 0; i < gray.Length; i++) rgbMask[i * 3] = rgbMask[i * 3 + 1] = rgbMask[i * 3 + 2] = gray[i];
        foreach (PngImage mask in new[] { new PngImage(5, 4, 1, gray), new PngImage(5, 4, 3, rgbMask) })
        {
            using Tensor same = ControlNetPass.InpaintCondition(picture, mask, 5, 4), twice = ControlNetPass.InpaintCondition(picture, mask, 10, 8);
            using Tensor odd = ControlNetPass.InpaintCondition(picture, mask, 7, 3);
            for (int p = 0; p < 20; p++)
            {
                for (int c = 0; c < 3; c++)
                {
                    float expected = p is 1 or 7 ? -1f : picture.Pixels[p * 3 + c] / 255f;
                    Assert.Equal(expected, same.Span[p * 3 + c]);
                }
            }
            for (int y = 0; y < 8; y++)
            {
                for (int x = 0; x < 10; x++)
                {
                    Assert.Equal(same.Span[((y / 2) * 5 + x / 2) * 3 + 1], twice.Span[(y * 10 + x) * 3 + 1]);
                }
            }
            // 4 rows to 3: rows 0, 1, 2 (floor(y x 4/3)); 5 columns to 7: 0, 0, 1, 2, 2, 3, 4 (floor(x x 5/7)).
            int[] rows = [0, 1, 2], columns = [0, 0, 1, 2, 2, 3, 4];
            for (int y = 0; y < 3; y++)
            {
                for (int x = 0; x < 7; x++)
                {
                    Assert.Equal(same.Span[(rows[y] * 5 + columns[x]) * 3 + 2], odd.Span[(y * 7 + x) * 3 + 2]);
                }
            }
        }
    }

    /// <summary>
    /// A unit with a mask steers by the masked condition: an empty mask at the pass's size is the plain unit (the
    /// picture is not resized either way), a mask over part of it changes the run; a mask of another size is refused.
    /// </summary>
    [FixtureFact]
    public void A_masked_unit_steers_by_the_inpainting_condition()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        var unit = new ControlNetUnit(controlNet, Picture(32, 24, 1));
        var marks = new byte[32 * 24];
        float[] plain = Latents(pipeline, Request with { ControlNets = [unit] });
        Assert.Equal(plain, Latents(pipeline, Request with { ControlNets = [unit with { Mask = new PngImage(32, 24, 1, marks) }] }));
        for (int y = 4; y < 12; y++) marks.AsSpan(y * 32 + 8, 10).Fill(255);
        float[] masked = Latents(pipeline, Request with { ControlNets = [unit with { Mask = new PngImage(32, 24, 1, marks) }] });
        Assert.True(Compare.RelativeL2(plain, masked) > 1e-4, "the mask changed nothing");
        string message = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with
        {
            ControlNets = [unit with { Mask = new PngImage(16, 24, 1, new byte[16 * 24]) }],
        })).Message;
        Assert.Contains("its mask is 16x24, its picture 32x24", message);
        message = Assert.Throws<ArgumentException>(() => pipeline.Generate(Request with
        {
            ControlNets = [unit with { Mask = new PngImage(32, 24, 1, marks), Resize = Imaging.ResizeMode.Crop }],
        })).Message;
        Assert.Contains("resize mode Crop; an inpainting condition (a mask given) is just resized", message);
    }

    /// <summary>The pipeline runs an inpainting UNet with a ControlNet: at scale 0 it is the plain inpainting run.</summary>
    [FixtureFact]
    public void An_inpainting_unet_runs_with_a_controlnet()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var models = new InpaintModels();
        using var pipeline = StableDiffusionPipeline.Load(models.PathFor(9));
        using Tensor picture = InpaintUNetTests.Picture(), mask = InpaintUNetTests.Mask();
        GenerateRequest request = Request with
        {
            Width = InpaintUNetTests.Width, Height = InpaintUNetTests.Height, Steps = 3, Strength = 0.75, InitImage = picture, Mask = mask,
        };
        var unit = new ControlNetUnit(controlNet, Picture(48, 32, 5));
        float[] plain = Latents(pipeline, request);
        Assert.Equal(plain, Latents(pipeline, request with { ControlNets = [unit with { Scale = 0 }] }));
        float[] steered = Latents(pipeline, request with { ControlNets = [unit] });
        float[] guessed = Latents(pipeline, request with { ControlNets = [unit with { GuessMode = true }] });
        Assert.True(Compare.RelativeL2(plain, steered) > 1e-4, "the ControlNet changed nothing");
        Assert.True(Compare.RelativeL2(steered, guessed) > 1e-4, "guess mode changed nothing");
    }

    [FixtureFact]
    public void Units_that_do_not_fit_are_refused_before_any_work()
    {
        using ControlNetSource source = ControlNetSource.Open(ControlNetFixture.Write(_dir, "shared_image"));
        using var controlNet = new ControlNetModel(source.Config, source.Weights);
        using var pipeline = StableDiffusionPipeline.Load(Fixtures.Path("tiny/model"));
        var unit = new ControlNetUnit(controlNet, Picture(8, 8, 3));
        foreach (ControlNetUnit bad in new[]
        {
            unit with { Scale = float.NaN }, unit with { GuidanceStart = 0.5f, GuidanceEnd = 0.5f }, unit with { GuidanceEnd = 1.5f },
            unit with { GuidanceStart = -0.1f }, unit with { Image = null! }, unit with { Model = null! },
        })
        {
            Assert.Throws<ArgumentException>(() => pipeline.Validate(Request with { ControlNets = [bad] }));
        }

        using var small = StableDiffusionPipeline.Load(Fixtures.Path("small/model"));
        Assert.Contains("does not fit this model", Assert.Throws<ArgumentException>(() => small.Validate(Request with { Width = 64, Height = 64, ControlNets = [unit] })).Message);
    }
}
