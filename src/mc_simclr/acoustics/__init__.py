"""Room acoustics: scene sampling, RIR backends and spatialisation of mono clips."""
