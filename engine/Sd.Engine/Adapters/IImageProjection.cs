namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter's image projection (image_proj): a picture's encoding in, image tokens of the UNet's text width out.
/// Its input is the image encoder's image_embeds (one row per picture) or its penultimate hidden states (one row per
/// position). It runs once per picture and generation, not per step: it allocates what it needs per call.
/// </summary>
internal unsafe interface IImageProjection : IDisposable
{
    /// <summary>Image tokens it makes per picture from <paramref name="positions"/> input rows per picture.</summary>
    int TokensFor(int positions);

    /// <summary>tokens [batch x TokensFor(positions), D] from input [batch x positions, E].</summary>
    void Forward(float* input, int batch, int positions, float* tokens);
}
