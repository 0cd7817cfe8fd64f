using System.Text.Json;
using Sd.Engine.Imaging;
using Sd.Engine.Tensors;

namespace Sd.Engine.Tests;

/// <summary>
/// A1111's picture resize for the hires fix against its code run on Pillow (Data/image-upscale-reference.json from
/// image-upscale-reference.py: resize_image and Upscaler.upscale with the Lanczos and Nearest upscalers, and "None"), bit for bit,
/// and the conversions around it.
/// </summary>
public sealed class ImageUpscalingTests
{
    [Fact]
    public void The_resize_chain_is_a1111s_on_pillow()
    {
        using var reference = ReferenceData.Json("image-upscale-reference.json");
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            ImageUpscaler upscaler = Enum.Parse<ImageUpscaler>(c.GetProperty("upscaler").GetString()!);
            int h = c.GetProperty("in")[0].GetInt32(), w = c.GetProperty("in")[1].GetInt32();
            int oh = c.GetProperty("out")[0].GetInt32(), ow = c.GetProperty("out")[1].GetInt32();
            byte[] x = Convert.FromBase64String(c.GetProperty("x").GetString()!), expected = Convert.FromBase64String(c.GetProperty("y").GetString()!);
            byte[] y = ImageUpscaling.Upscale(x, h, w, oh, ow, upscaler);
            Assert.True(expected.AsSpan().SequenceEqual(y), $"{upscaler} {h}x{w} to {oh}x{ow}: first difference at byte {expected.AsSpan().CommonPrefixLength(y)}");
            cases++;
        }
        Assert.Equal(12, cases);
    }

    /// <summary>
    /// The Lanczos upscaler is not one resize: 40x24 pixels to 100x60 goes by 96x56 (the scale's 100x60 floored to
    /// multiples of 8), so it differs from "None"'s single resize; to 22x22 from 16x16 (floored: 16) it is that resize.
    /// </summary>
    [Fact]
    public void Lanczos_goes_through_a_multiple_of_eight()
    {
        var x = new byte[24 * 40 * 3];
        new Random(5).NextBytes(x);
        Assert.False(ImageUpscaling.Upscale(x, 24, 40, 60, 100, ImageUpscaler.Lanczos).AsSpan().SequenceEqual(ImageUpscaling.Upscale(x, 24, 40, 60, 100, ImageUpscaler.None)));
        byte[] small = x[..(16 * 16 * 3)];
        Assert.Equal(ImageUpscaling.Upscale(small, 16, 16, 22, 22, ImageUpscaler.None), ImageUpscaling.Upscale(small, 16, 16, 22, 22, ImageUpscaler.Lanczos));
    }

    /// <summary>
    /// Decoder output to bytes as A1111 makes them: 255 x clamp((x + 1) / 2, 0, 1) in float32, truncated (0.999 of a
    /// level is the level below, where diffusers' PNG rounds); back as 2 x (byte / 255) - 1.
    /// </summary>
    [Fact]
    public void The_picture_is_truncated_to_bytes_and_read_back_in_float32()
    {
        using Tensor decoded = Tensor.Allocate([1, 1, 2, 3]);
        float[] values = [-2f, -1f, 1f, 5f, 2f * (200.999f / 255f) - 1f, 0f];
        values.CopyTo(decoded.Span);
        using Tensor same = ImageUpscaling.Upscale(decoded, 1, 2, ImageUpscaler.None);
        float[] expected = Array.ConvertAll(new byte[] { 0, 0, 255, 255, 200, 127 }, b => 2f * (b / 255f) - 1f);
        Assert.Equal(expected, same.Span.ToArray());
        Assert.Throws<ArgumentException>(() => ImageUpscaling.Upscale(Tensor.Allocate([1, 2, 2, 4]), 4, 4, ImageUpscaler.None));
    }
}
