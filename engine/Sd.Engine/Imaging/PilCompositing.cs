namespace Sd.Engine.Imaging;

/// <summary>
/// The Pillow 9.4 pixel arithmetic of A1111's inpainting pictures, byte for byte: a see-through picture flattened onto
/// white, a picture pasted through a mask onto an empty premultiplied canvas and converted back to straight alpha
/// (the overlay, and what masked content "fill" blurs), and Image.alpha_composite.
/// </summary>
/// Reference: Pillow 9.4 libImaging/Paste.c (paste_mask_L, paste_mask_RGBA, BLEND), Convert.c (rgbA2rgba, rgba2rgbA),
/// AlphaComposite.c (ImagingAlphaComposite, PRECISION_BITS 7).
internal static class PilCompositing
{
    /// <summary>Pillow's DIV255: a / 255 rounded, for a below 2^16 x 255.</summary>
    private static int Div255(int a)
    {
        a += 128;
        return ((a >> 8) + a) >> 8;
    }

    /// <summary>
    /// RGBA [H, W, 4], straight alpha: A1111's overlay image, Image.new("RGBa").paste(rgb.convert("RGBA").convert("RGBa"),
    /// mask=ImageOps.invert(mask)).convert("RGBA"): the picture wherever the mask is 0, fading out (alpha 255 - mask) where it is not.
    /// </summary>
    public static byte[] MaskedPicture(ReadOnlySpan<byte> rgb, ReadOnlySpan<byte> mask)
    {
        byte[] rgba = PremultipliedMasked(rgb, mask);
        Unpremultiply(rgba);
        return rgba;
    }

    /// <summary>
    /// RGBa [H, W, 4], premultiplied: Image.new("RGBa").paste(rgb.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask)),
    /// each value BLEND(255 - mask, 0, value) = DIV255(value x (255 - mask)), the opaque picture's premultiplied colours being its own.
    /// </summary>
    public static byte[] PremultipliedMasked(ReadOnlySpan<byte> rgb, ReadOnlySpan<byte> mask)
    {
        var rgba = new byte[mask.Length * 4];
        for (int p = 0; p < mask.Length; p++)
        {
            int keep = 255 - mask[p];
            for (int c = 0; c < 3; c++) rgba[p * 4 + c] = (byte)Div255(rgb[p * 3 + c] * keep);
            rgba[p * 4 + 3] = (byte)Div255(255 * keep);
        }
        return rgba;
    }

    /// <summary>Pillow's RGBa to RGBA in place: colours x 255 / alpha, clipped, where alpha is neither 0 nor 255.</summary>
    public static void Unpremultiply(Span<byte> rgba)
    {
        for (int i = 0; i < rgba.Length; i += 4)
        {
            int alpha = rgba[i + 3];
            if (alpha is 0 or 255)
                continue;
            for (int c = 0; c < 3; c++) rgba[i + c] = (byte)Math.Min(255, 255 * rgba[i + c] / alpha);
        }
    }

    /// <summary>
    /// RGB [H, W, 3]: A1111's images.flatten of RGBA onto white, Image.new("RGBA", size, "#ffffff").paste(rgba,
    /// mask=rgba).convert("RGB"): each colour BLEND(alpha, 255, c).
    /// </summary>
    public static byte[] OnWhite(ReadOnlySpan<byte> rgba)
    {
        var rgb = new byte[rgba.Length / 4 * 3];
        for (int p = 0; p < rgba.Length / 4; p++)
        {
            int alpha = rgba[p * 4 + 3];
            for (int c = 0; c < 3; c++) rgb[p * 3 + c] = (byte)Div255(255 * (255 - alpha) + rgba[p * 4 + c] * alpha);
        }
        return rgb;
    }

    /// <summary>Image.alpha_composite(<paramref name="destination"/>, <paramref name="source"/>) in place: source over destination, both RGBA.</summary>
    public static void AlphaComposite(Span<byte> destination, ReadOnlySpan<byte> source)
    {
        const int Precision = 7;
        for (int i = 0; i < destination.Length; i += 4)
        {
            int sourceAlpha = source[i + 3];
            if (sourceAlpha == 0)
            {
                continue; // Pillow copies the destination pixel
            }
            uint blend = (uint)(destination[i + 3] * (255 - sourceAlpha));
            uint alpha255 = (uint)(sourceAlpha * 255) + blend;
            uint coefficient1 = (uint)sourceAlpha * 255 * 255 * (1 << Precision) / alpha255;
            uint coefficient2 = 255 * (1 << Precision) - coefficient1;
            for (int c = 0; c < 3; c++)
            {
                uint value = source[i + c] * coefficient1 + destination[i + c] * coefficient2 + (0x80 << Precision);
                destination[i + c] = (byte)((((value >> 8) + value) >> 8) >> Precision);
            }
            uint a = alpha255 + 0x80;
            destination[i + 3] = (byte)(((a >> 8) + a) >> 8);
        }
    }
}
